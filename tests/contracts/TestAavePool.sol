// SPDX-License-Identifier: MIT
// Coffer test chain: an Aave-v3-like Pool with one reserve (TestUSDC) and its
// rebasing aToken. The function selectors of supply, withdraw and
// getReserveNormalizedIncome are Aave v3's; everything else (borrowing,
// collateral, reserve configuration, getReserveData) is left out.
//
// Interest: the liquidity index grows linearly with time at `ratePerSecond`
// (ray, 1e27 = 100 % per second) since the last state update, and compounds
// at each update (supply, withdraw, setRate), as Aave's liquidity index does:
//     index(t) = floor(index_last * (RAY + ratePerSecond * (t - t_last)) / RAY)
// Balances are stored scaled: balanceOf = floor(scaled * index / RAY).
// Rounding always favours the pool (as Aave v3.5 does; earlier versions
// round half-up): supply mints floor(amount * RAY / index) scaled units,
// withdraw and transfer take ceil(amount * RAY / index).
// There are no borrowers: the underlying that pays the interest is minted
// to the aToken by the deployer (scripts/stack up), as simulated borrower
// interest. A withdrawal beyond what the aToken holds reverts. Test code only.
pragma solidity ^0.8.20;

import "./TestERC20.sol";

contract TestAToken {
    uint256 internal constant RAY = 1e27;

    string public constant name = "Coffer Test Aave USDC";
    string public constant symbol = "aTestUSDC";
    uint8 public constant decimals = 6;

    TestAavePool public immutable POOL;
    address public immutable UNDERLYING_ASSET_ADDRESS;

    mapping(address => uint256) public scaledBalanceOf;
    uint256 public scaledTotalSupply;
    mapping(address => mapping(address => uint256)) public allowance;

    event Transfer(address indexed from, address indexed to, uint256 value);
    event Approval(address indexed owner, address indexed spender, uint256 value);

    error OnlyPool(address caller);
    error InsufficientBalance(address from, uint256 balance, uint256 needed);
    error InsufficientAllowance(address spender, uint256 allowance, uint256 needed);
    error ZeroAddress();
    error UnderlyingTransferFailed();

    constructor(TestAavePool pool, address underlying) {
        POOL = pool;
        UNDERLYING_ASSET_ADDRESS = underlying;
    }

    modifier onlyPool() {
        if (msg.sender != address(POOL)) revert OnlyPool(msg.sender);
        _;
    }

    function _index() internal view returns (uint256) {
        return POOL.getReserveNormalizedIncome(UNDERLYING_ASSET_ADDRESS);
    }

    function balanceOf(address who) public view returns (uint256) {
        return scaledBalanceOf[who] * _index() / RAY;
    }

    function totalSupply() external view returns (uint256) {
        return scaledTotalSupply * _index() / RAY;
    }

    /// Pool only: credit `scaled` units to `to`; `amount` (underlying units)
    /// is what the Transfer event shows.
    function mint(address to, uint256 scaled, uint256 amount) external onlyPool {
        scaledBalanceOf[to] += scaled;
        scaledTotalSupply += scaled;
        emit Transfer(address(0), to, amount);
    }

    /// Pool only: take `scaled` units from `from` and send `amount` of the
    /// underlying to `to`.
    function burn(address from, address to, uint256 scaled, uint256 amount) external onlyPool {
        uint256 s = scaledBalanceOf[from];
        if (s < scaled) revert InsufficientBalance(from, s, scaled);
        unchecked {
            scaledBalanceOf[from] = s - scaled;
            scaledTotalSupply -= scaled;
        }
        emit Transfer(from, address(0), amount);
        if (!ITestToken(UNDERLYING_ASSET_ADDRESS).transfer(to, amount)) revert UnderlyingTransferFailed();
    }

    function transfer(address to, uint256 value) external returns (bool) {
        _transfer(msg.sender, to, value);
        return true;
    }

    function approve(address spender, uint256 value) external returns (bool) {
        if (spender == address(0)) revert ZeroAddress();
        allowance[msg.sender][spender] = value;
        emit Approval(msg.sender, spender, value);
        return true;
    }

    function transferFrom(address from, address to, uint256 value) external returns (bool) {
        uint256 a = allowance[from][msg.sender];
        if (a != type(uint256).max) {
            if (a < value) revert InsufficientAllowance(msg.sender, a, value);
            unchecked { allowance[from][msg.sender] = a - value; }
        }
        _transfer(from, to, value);
        return true;
    }

    // value <= floor(s * index / RAY) implies ceil(value * RAY / index) <= s.
    function _transfer(address from, address to, uint256 value) internal {
        if (to == address(0)) revert ZeroAddress();
        uint256 index = _index();
        uint256 s = scaledBalanceOf[from];
        uint256 bal = s * index / RAY;
        if (bal < value) revert InsufficientBalance(from, bal, value);
        uint256 scaled = (value * RAY + index - 1) / index;
        unchecked {
            scaledBalanceOf[from] = s - scaled;
            scaledBalanceOf[to] += scaled;
        }
        emit Transfer(from, to, value);
    }
}

contract TestAavePool {
    uint256 internal constant RAY = 1e27;
    /// 5 % a year, linear: 0.05e27 / 31536000 (rounded down).
    uint256 public constant DEFAULT_RATE_PER_SECOND = 1585489599188229325;

    address public immutable owner;
    address public immutable asset;
    TestAToken public immutable aToken;

    uint256 public liquidityIndex;        // ray, at lastUpdateTimestamp
    uint256 public lastUpdateTimestamp;
    uint256 public ratePerSecond;         // ray per second
    bool public paused;                   // setPaused: supply and withdraw revert

    event Supply(address indexed reserve, address user, address indexed onBehalfOf,
                 uint256 amount, uint16 indexed referralCode);
    event Withdraw(address indexed reserve, address indexed user, address indexed to, uint256 amount);
    event RateSet(uint256 rayPerSecond, uint256 liquidityIndex);
    event PausedSet(bool paused);

    error NotOwner(address caller);
    error UnsupportedAsset(address asset);
    error InvalidAmount();
    error NotEnoughAvailableUserBalance(uint256 balance, uint256 requested);
    error TransferFailed();
    error ReservePaused();

    constructor(address asset_) {
        owner = msg.sender;
        asset = asset_;
        aToken = new TestAToken(this, asset_);
        liquidityIndex = RAY;
        lastUpdateTimestamp = block.timestamp;
        ratePerSecond = DEFAULT_RATE_PER_SECOND;
    }

    /// The liquidity index now (ray), as Aave's getReserveNormalizedIncome.
    function getReserveNormalizedIncome(address asset_) public view returns (uint256) {
        if (asset_ != asset) revert UnsupportedAsset(asset_);
        return _currentIndex();
    }

    function _currentIndex() internal view returns (uint256) {
        uint256 dt = block.timestamp - lastUpdateTimestamp;
        return liquidityIndex * (RAY + ratePerSecond * dt) / RAY;
    }

    function _updateState() internal returns (uint256 index) {
        index = _currentIndex();
        if (lastUpdateTimestamp != block.timestamp) {
            liquidityIndex = index;
            lastUpdateTimestamp = block.timestamp;
        }
    }

    /// Deployer only: the index is brought up to date first, then grows at
    /// `rayPerSecond` from now on.
    function setRate(uint256 rayPerSecond) external {
        if (msg.sender != owner) revert NotOwner(msg.sender);
        uint256 index = _updateState();
        ratePerSecond = rayPerSecond;
        emit RateSet(rayPerSecond, index);
    }

    /// Deployer only: while paused, supply and withdraw revert
    /// ReservePaused() (as Aave's paused reserve), so tests can make a
    /// transaction that estimated fine revert when mined.
    function setPaused(bool paused_) external {
        if (msg.sender != owner) revert NotOwner(msg.sender);
        paused = paused_;
        emit PausedSet(paused_);
    }

    function supply(address asset_, uint256 amount, address onBehalfOf, uint16 referralCode) external {
        if (paused) revert ReservePaused();
        if (asset_ != asset) revert UnsupportedAsset(asset_);
        if (amount == 0) revert InvalidAmount();
        uint256 index = _updateState();
        uint256 scaled = amount * RAY / index;
        if (scaled == 0) revert InvalidAmount();
        if (!ITestToken(asset).transferFrom(msg.sender, address(aToken), amount)) revert TransferFailed();
        aToken.mint(onBehalfOf, scaled, amount);
        emit Supply(asset_, msg.sender, onBehalfOf, amount, referralCode);
    }

    /// amount = type(uint256).max withdraws the whole balance (all scaled
    /// units). Returns the amount withdrawn.
    function withdraw(address asset_, uint256 amount, address to) external returns (uint256) {
        if (paused) revert ReservePaused();
        if (asset_ != asset) revert UnsupportedAsset(asset_);
        uint256 index = _updateState();
        uint256 s = aToken.scaledBalanceOf(msg.sender);
        uint256 bal = s * index / RAY;
        uint256 scaled;
        if (amount == type(uint256).max) {
            amount = bal;
            scaled = s;
        } else {
            if (amount > bal) revert NotEnoughAvailableUserBalance(bal, amount);
            scaled = (amount * RAY + index - 1) / index;
        }
        if (amount == 0) revert InvalidAmount();
        aToken.burn(msg.sender, to, scaled, amount);
        emit Withdraw(asset_, msg.sender, to, amount);
        return amount;
    }
}
