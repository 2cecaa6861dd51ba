// SPDX-License-Identifier: MIT
// Coffer test chain: an ERC-4626 (EIP-4626) tokenized vault over TestUSDC,
// standing in for Morpho / Yearn v3 vaults. Test code only.
//
// totalAssets is the vault's TestUSDC balance, so anything that lands in the
// vault is yield: the deployer's simulateYield(amount) mints TestUSDC into
// it (the vault is a TestUSDC minter), and a plain transfer (a donation)
// counts as well.
//
// Inflation attacks: a virtual offset as OpenZeppelin's ERC4626 with
// _decimalsOffset() = 12 (as Morpho's vaults: shares have 18 decimals for a
// 6-decimal asset):
//     toShares(a) = a * (totalSupply + 1e12) / (totalAssets + 1)
//     toAssets(s) = s * (totalAssets + 1) / (totalSupply + 1e12)
// rounded as EIP-4626 asks, in the vault's favour: down for deposit,
// convertToShares, convertToAssets and redeem; up for mint's assets and
// withdraw's shares. A deposit that would mint no shares reverts.
// Products must fit in 256 bits (checked arithmetic reverts otherwise):
// ample for test amounts.
pragma solidity ^0.8.20;

import "./TestERC20.sol";

contract TestVault4626 is TestERC20 {
    uint256 internal constant OFFSET = 1e12;  // 10 ** _decimalsOffset()

    address public immutable owner;
    address public immutable asset;

    event Deposit(address indexed sender, address indexed owner, uint256 assets, uint256 shares);
    event Withdraw(address indexed sender, address indexed receiver, address indexed owner,
                   uint256 assets, uint256 shares);
    event YieldSimulated(uint256 amount);

    error NotOwner(address caller);
    error ExceededMaxWithdraw(address owner, uint256 assets, uint256 max);
    error ExceededMaxRedeem(address owner, uint256 shares, uint256 max);
    error ZeroShares();
    error TransferFailed();

    constructor(address asset_) TestERC20("Coffer Test Vault USDC", "ctvUSDC", 18) {
        owner = msg.sender;
        asset = asset_;
    }

    /// Deployer only: mint `amount` of the asset into the vault (yield for
    /// every share holder).
    function simulateYield(uint256 amount) external {
        if (msg.sender != owner) revert NotOwner(msg.sender);
        ITestToken(asset).mint(address(this), amount);
        emit YieldSimulated(amount);
    }

    function totalAssets() public view returns (uint256) {
        return ITestToken(asset).balanceOf(address(this));
    }

    function _mulDiv(uint256 x, uint256 y, uint256 d, bool up) internal pure returns (uint256) {
        uint256 p = x * y;
        return up ? (p == 0 ? 0 : (p - 1) / d + 1) : p / d;
    }

    function _toShares(uint256 assets, bool up) internal view returns (uint256) {
        return _mulDiv(assets, totalSupply + OFFSET, totalAssets() + 1, up);
    }

    function _toAssets(uint256 shares, bool up) internal view returns (uint256) {
        return _mulDiv(shares, totalAssets() + 1, totalSupply + OFFSET, up);
    }

    function convertToShares(uint256 assets) external view returns (uint256) { return _toShares(assets, false); }
    function convertToAssets(uint256 shares) external view returns (uint256) { return _toAssets(shares, false); }
    function previewDeposit(uint256 assets) public view returns (uint256) { return _toShares(assets, false); }
    function previewMint(uint256 shares) public view returns (uint256) { return _toAssets(shares, true); }
    function previewWithdraw(uint256 assets) public view returns (uint256) { return _toShares(assets, true); }
    function previewRedeem(uint256 shares) public view returns (uint256) { return _toAssets(shares, false); }

    function maxDeposit(address) external pure returns (uint256) { return type(uint256).max; }
    function maxMint(address) external pure returns (uint256) { return type(uint256).max; }
    function maxWithdraw(address holder) public view returns (uint256) { return _toAssets(balanceOf[holder], false); }
    function maxRedeem(address holder) public view returns (uint256) { return balanceOf[holder]; }

    function deposit(uint256 assets, address receiver) external returns (uint256 shares) {
        shares = previewDeposit(assets);
        if (shares == 0) revert ZeroShares();
        _enter(receiver, assets, shares);
    }

    function mint(uint256 shares, address receiver) external returns (uint256 assets) {
        assets = previewMint(shares);
        _enter(receiver, assets, shares);
    }

    function withdraw(uint256 assets, address receiver, address holder) external returns (uint256 shares) {
        uint256 max = maxWithdraw(holder);
        if (assets > max) revert ExceededMaxWithdraw(holder, assets, max);
        shares = previewWithdraw(assets);
        _exit(receiver, holder, assets, shares);
    }

    function redeem(uint256 shares, address receiver, address holder) external returns (uint256 assets) {
        uint256 max = maxRedeem(holder);
        if (shares > max) revert ExceededMaxRedeem(holder, shares, max);
        assets = previewRedeem(shares);
        _exit(receiver, holder, assets, shares);
    }

    function _enter(address receiver, uint256 assets, uint256 shares) internal {
        if (!ITestToken(asset).transferFrom(msg.sender, address(this), assets)) revert TransferFailed();
        _mint(receiver, shares);
        emit Deposit(msg.sender, receiver, assets, shares);
    }

    function _exit(address receiver, address holder, uint256 assets, uint256 shares) internal {
        if (msg.sender != holder) _spendAllowance(holder, msg.sender, shares);
        _burn(holder, shares);
        if (!ITestToken(asset).transfer(receiver, assets)) revert TransferFailed();
        emit Withdraw(msg.sender, receiver, holder, assets, shares);
    }
}
