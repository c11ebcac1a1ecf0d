// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {TimelockController} from "@openzeppelin/contracts/governance/TimelockController.sol";

/// @title The timelock that owns Lineage's on-chain parameters.
/// @notice OpenZeppelin's TimelockController as it is. Deployed with the governor as the only proposer
///         (and canceller), anyone as executor (address(0)) and no admin once set up, so a parameter
///         changes only through a passed proposal that has waited `getMinDelay()` seconds.
contract LineageTimelock is TimelockController {
    constructor(uint256 minDelay, address[] memory proposers, address[] memory executors, address admin)
        TimelockController(minDelay, proposers, executors, admin)
    {}
}
