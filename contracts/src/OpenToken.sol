// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Permit.sol";

/// @title OPEN, the Lineage reward token.
/// @notice Fixed supply: everything is minted once to the treasury, so no key can ever inflate the
///         supply after deployment. ERC-2612 permits let contributors approve without holding gas.
contract OpenToken is ERC20, ERC20Permit {
    error ZeroTreasury();

    constructor(address treasury, uint256 supply) ERC20("Open", "OPEN") ERC20Permit("Open") {
        if (treasury == address(0)) revert ZeroTreasury();
        _mint(treasury, supply);
    }
}
