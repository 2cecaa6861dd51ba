// SPDX-License-Identifier: MIT
// Coffer test chain: a plain ERC-20 (EIP-20) base shared by TestUSDC and the
// ERC-4626 vault's share token. Test code only: never deploy to a real chain.
pragma solidity ^0.8.20;

/// What the other test contracts call on TestUSDC.
interface ITestToken {
    function transfer(address to, uint256 value) external returns (bool);
    function transferFrom(address from, address to, uint256 value) external returns (bool);
    function balanceOf(address who) external view returns (uint256);
    function mint(address to, uint256 value) external;
}

abstract contract TestERC20 {
    string public name;
    string public symbol;
    uint8 public immutable decimals;
    uint256 public totalSupply;
    mapping(address => uint256) public balanceOf;
    mapping(address => mapping(address => uint256)) public allowance;

    event Transfer(address indexed from, address indexed to, uint256 value);
    event Approval(address indexed owner, address indexed spender, uint256 value);

    error InsufficientBalance(address from, uint256 balance, uint256 needed);
    error InsufficientAllowance(address spender, uint256 allowance, uint256 needed);
    error ZeroAddress();

    constructor(string memory name_, string memory symbol_, uint8 decimals_) {
        name = name_;
        symbol = symbol_;
        decimals = decimals_;
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
        _spendAllowance(from, msg.sender, value);
        _transfer(from, to, value);
        return true;
    }

    // An allowance of type(uint256).max is infinite: never decremented. No
    // Approval event on spending (EIP-20 does not ask for one).
    function _spendAllowance(address owner, address spender, uint256 value) internal {
        uint256 a = allowance[owner][spender];
        if (a != type(uint256).max) {
            if (a < value) revert InsufficientAllowance(spender, a, value);
            unchecked { allowance[owner][spender] = a - value; }
        }
    }

    function _transfer(address from, address to, uint256 value) internal {
        if (to == address(0)) revert ZeroAddress();
        uint256 b = balanceOf[from];
        if (b < value) revert InsufficientBalance(from, b, value);
        unchecked {
            balanceOf[from] = b - value;
            balanceOf[to] += value;  // cannot overflow: bounded by totalSupply
        }
        emit Transfer(from, to, value);
    }

    function _mint(address to, uint256 value) internal {
        if (to == address(0)) revert ZeroAddress();
        totalSupply += value;  // checked: reverts on overflow
        unchecked { balanceOf[to] += value; }
        emit Transfer(address(0), to, value);
    }

    function _burn(address from, uint256 value) internal {
        uint256 b = balanceOf[from];
        if (b < value) revert InsufficientBalance(from, b, value);
        unchecked {
            balanceOf[from] = b - value;
            totalSupply -= value;
        }
        emit Transfer(from, address(0), value);
    }
}
