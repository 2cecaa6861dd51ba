// SPDX-License-Identifier: MIT
// Coffer test chain: a 6-decimal ERC-20 standing in for USDC. The deployer
// mints (tests fund wallets with it) and may let other contracts mint (the
// ERC-4626 test vault's simulateYield). Test code only.
pragma solidity ^0.8.20;

import "./TestERC20.sol";

contract TestUSDC is TestERC20 {
    address public immutable owner;
    mapping(address => bool) public isMinter;

    event MinterSet(address indexed minter, bool allowed);

    error NotMinter(address caller);
    error NotOwner(address caller);

    constructor() TestERC20("Coffer Test USD Coin", "USDC", 6) {
        owner = msg.sender;
    }

    function mint(address to, uint256 value) external {
        if (msg.sender != owner && !isMinter[msg.sender]) revert NotMinter(msg.sender);
        _mint(to, value);
    }

    function setMinter(address minter, bool allowed) external {
        if (msg.sender != owner) revert NotOwner(msg.sender);
        isMinter[minter] = allowed;
        emit MinterSet(minter, allowed);
    }
}
