// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Permit.sol";
import {ERC20Votes} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Votes.sol";
import {ERC20Wrapper} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Wrapper.sol";
import {Nonces} from "@openzeppelin/contracts/utils/Nonces.sol";

/// @title vOPEN, OPEN wrapped 1:1 into a voting token for Lineage governance.
/// @notice `depositFor` locks OPEN and mints the same amount of vOPEN; `withdrawTo` burns vOPEN and
///         returns the OPEN. Voting power is checkpointed per block (ERC20Votes' default clock) and
///         counts only once the holder delegates (to itself or to someone else). OPEN itself stays a
///         plain fixed-supply ERC-20: only holders who want a say wrap it.
contract OpenVotes is ERC20, ERC20Permit, ERC20Votes, ERC20Wrapper {
    constructor(IERC20 open) ERC20("Open Votes", "vOPEN") ERC20Permit("Open Votes") ERC20Wrapper(open) {}

    function decimals() public view override(ERC20, ERC20Wrapper) returns (uint8) {
        return super.decimals();
    }

    function nonces(address owner) public view override(ERC20Permit, Nonces) returns (uint256) {
        return super.nonces(owner);
    }

    function _update(address from, address to, uint256 value) internal override(ERC20, ERC20Votes) {
        super._update(from, to, value);
    }
}
