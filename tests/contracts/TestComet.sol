// SPDX-License-Identifier: MIT
// Coffer test chain: a Compound-v3-like market (Comet) for its base token
// (TestUSDC), supply side only. The selectors of supply, supplyTo, withdraw,
// withdrawTo, balanceOf, baseToken, totalSupply, getSupplyRate,
// getUtilization, accrueAccount, baseIndexScale, totalsBasic and userBasic
// are Comet's; borrowing, collateral, rewards and pausing are left out, and
// a withdrawal beyond the balance reverts (Comet would open a borrow).
//
// Interest, as Comet's accrual: the supply index (scale 1e15) grows at
// `supplyRatePerSecond` (scale 1e18) and is brought up to date by every
// state change:
//     index(t) = index_last + floor(index_last * rate * (t - t_last) / 1e18)
// Positions are principals: balanceOf = floor(principal * index / 1e15);
// after a supply or withdrawal the principal is floor(newBalance * 1e15 / index)
// (both round down, as Comet's presentValueSupply/principalValueSupply).
// There are no borrowers: the deployer mints the base token to the market
// (scripts/stack up) as simulated borrower interest. Test code only.
pragma solidity ^0.8.20;

import "./TestERC20.sol";

contract TestComet {
    uint64 internal constant BASE_INDEX_SCALE = 1e15;
    uint256 internal constant FACTOR_SCALE = 1e18;
    /// 5 % a year, linear: 0.05e18 / 31536000 (rounded down).
    uint64 public constant DEFAULT_SUPPLY_RATE = 1585489599;

    struct TotalsBasic {
        uint64 baseSupplyIndex;
        uint64 baseBorrowIndex;
        uint64 trackingSupplyIndex;
        uint64 trackingBorrowIndex;
        uint104 totalSupplyBase;
        uint104 totalBorrowBase;
        uint40 lastAccrualTime;
        uint8 pauseFlags;
    }

    address public immutable owner;
    address public immutable baseToken;
    uint8 public constant decimals = 6;

    uint256 internal supplyIndex;        // scale 1e15, at lastAccrual
    uint256 internal lastAccrual;
    uint256 public totalSupplyBase;      // sum of principals
    uint64 public supplyRatePerSecond;   // scale 1e18
    mapping(address => uint256) public principalOf;

    event Supply(address indexed from, address indexed dst, uint256 amount);
    event Withdraw(address indexed src, address indexed to, uint256 amount);
    event Transfer(address indexed from, address indexed to, uint256 amount);
    event RateSet(uint64 perSecond, uint256 baseSupplyIndex);

    error NotOwner(address caller);
    error UnsupportedAsset(address asset);
    error InsufficientBalance(uint256 balance, uint256 requested);
    error TransferFailed();

    constructor(address base) {
        owner = msg.sender;
        baseToken = base;
        supplyIndex = BASE_INDEX_SCALE;
        lastAccrual = block.timestamp;
        supplyRatePerSecond = DEFAULT_SUPPLY_RATE;
    }

    function baseIndexScale() external pure returns (uint64) {
        return BASE_INDEX_SCALE;
    }

    /// The supply rate per second (scale 1e18), whatever the utilization.
    function getSupplyRate(uint256) external view returns (uint64) {
        return supplyRatePerSecond;
    }

    /// No borrowers: always 0.
    function getUtilization() external pure returns (uint256) {
        return 0;
    }

    function _currentIndex() internal view returns (uint256) {
        uint256 dt = block.timestamp - lastAccrual;
        return supplyIndex + supplyIndex * (uint256(supplyRatePerSecond) * dt) / FACTOR_SCALE;
    }

    function _accrue() internal returns (uint256 index) {
        index = _currentIndex();
        if (lastAccrual != block.timestamp) {
            supplyIndex = index;
            lastAccrual = block.timestamp;
        }
    }

    function accrueAccount(address) external {
        _accrue();
    }

    /// The stored totals, as Comet's: the index and time of the last accrual.
    function totalsBasic() external view returns (TotalsBasic memory t) {
        t.baseSupplyIndex = uint64(supplyIndex);
        t.baseBorrowIndex = BASE_INDEX_SCALE;
        t.trackingSupplyIndex = 0;
        t.trackingBorrowIndex = 0;
        t.totalSupplyBase = uint104(totalSupplyBase);
        t.lastAccrualTime = uint40(lastAccrual);
    }

    function userBasic(address who) external view
        returns (int104 principal, uint64 baseTrackingIndex, uint64 baseTrackingAccrued,
                 uint16 assetsIn, uint8 reserved) {
        return (int104(int256(principalOf[who])), 0, 0, 0, 0);
    }

    /// The supply index now, accrued to this block (scale 1e15). Not a
    /// Comet function: Comet's is totalsBasic().baseSupplyIndex, as stored.
    function baseSupplyIndex() external view returns (uint256) {
        return _currentIndex();
    }

    function balanceOf(address who) public view returns (uint256) {
        return principalOf[who] * _currentIndex() / BASE_INDEX_SCALE;
    }

    function totalSupply() external view returns (uint256) {
        return totalSupplyBase * _currentIndex() / BASE_INDEX_SCALE;
    }

    /// Deployer only: accrue, then grow at `perSecond` (scale 1e18) from now on.
    function setRate(uint64 perSecond) external {
        if (msg.sender != owner) revert NotOwner(msg.sender);
        uint256 index = _accrue();
        supplyRatePerSecond = perSecond;
        emit RateSet(perSecond, index);
    }

    function supply(address asset, uint256 amount) external {
        _supply(msg.sender, msg.sender, asset, amount);
    }

    function supplyTo(address dst, address asset, uint256 amount) external {
        _supply(msg.sender, dst, asset, amount);
    }

    function withdraw(address asset, uint256 amount) external {
        _withdraw(msg.sender, msg.sender, asset, amount);
    }

    function withdrawTo(address to, address asset, uint256 amount) external {
        _withdraw(msg.sender, to, asset, amount);
    }

    function _supply(address from, address dst, address asset, uint256 amount) internal {
        if (asset != baseToken) revert UnsupportedAsset(asset);
        uint256 index = _accrue();
        if (!ITestToken(baseToken).transferFrom(from, address(this), amount)) revert TransferFailed();
        uint256 p = principalOf[dst];
        uint256 np = (p * index / BASE_INDEX_SCALE + amount) * BASE_INDEX_SCALE / index;
        principalOf[dst] = np;
        totalSupplyBase = totalSupplyBase - p + np;
        emit Supply(from, dst, amount);
        emit Transfer(address(0), dst, amount);
    }

    /// amount = type(uint256).max withdraws the whole balance.
    function _withdraw(address src, address to, address asset, uint256 amount) internal {
        if (asset != baseToken) revert UnsupportedAsset(asset);
        uint256 index = _accrue();
        uint256 p = principalOf[src];
        uint256 bal = p * index / BASE_INDEX_SCALE;
        if (amount == type(uint256).max) amount = bal;
        if (amount > bal) revert InsufficientBalance(bal, amount);
        uint256 np = (bal - amount) * BASE_INDEX_SCALE / index;
        principalOf[src] = np;
        totalSupplyBase = totalSupplyBase - p + np;
        emit Withdraw(src, to, amount);
        emit Transfer(src, address(0), amount);
        if (!ITestToken(baseToken).transfer(to, amount)) revert TransferFailed();
    }
}
