// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";

/// @title Lineage's on-chain parameter registry: the fee split, changed only by its owner (the timelock).
/// @notice An inference fee is split between the protocol treasury, the model owner and the data
///         contributors in basis points (1 bps = 0.01%). The platform mirrors every `FeeSplitChanged`
///         into its database as a new fee-policy version that applies from the next fee.
/// @dev Each share has bounds fixed at deployment (immutable), so even a passed proposal cannot, say,
///      give the contributors nothing: widening them takes a new registry. A split must add up to
///      exactly 10,000 bps.
contract ProtocolParameters is Ownable {
    uint256 public constant BPS = 10_000;

    struct FeeSplit {
        uint16 protocolBps;
        uint16 ownerBps;
        uint16 contributorsBps;
    }

    uint256 public immutable maxProtocolBps;
    uint256 public immutable maxOwnerBps;
    uint256 public immutable minContributorsBps;

    FeeSplit public feeSplit;
    /// @notice Number of splits set so far (the constructor's is 1).
    uint256 public feeSplitVersion;

    event FeeSplitChanged(uint256 indexed version, uint16 protocolBps, uint16 ownerBps, uint16 contributorsBps);

    // Neither error starts with a word that could read as a string's offset (`required` is 10,000, `share`
    // is text): web3's in-process test provider decodes any revert that parses as a string as Error(string)
    // when estimating gas, which would lose the error's name.

    /// @notice The shares add up to `total` bps instead of `required` (10,000).
    error FeeSplitNotWhole(uint256 required, uint256 total);
    /// @notice `share` ("protocol", "owner" or "contributors", as bytes32 text) is `value` bps, outside
    ///         [`min`, `max`].
    error FeeShareOutOfRange(bytes32 share, uint256 value, uint256 min, uint256 max);
    error BoundsInvalid();

    constructor(
        address initialOwner,
        uint256 maxProtocolBps_,
        uint256 maxOwnerBps_,
        uint256 minContributorsBps_,
        uint256 protocolBps,
        uint256 ownerBps,
        uint256 contributorsBps
    ) Ownable(initialOwner) {
        if (maxProtocolBps_ > BPS || maxOwnerBps_ > BPS || minContributorsBps_ > BPS) revert BoundsInvalid();
        maxProtocolBps = maxProtocolBps_;
        maxOwnerBps = maxOwnerBps_;
        minContributorsBps = minContributorsBps_;
        _setFeeSplit(protocolBps, ownerBps, contributorsBps);
    }

    /// @notice Set a new split; only the owner (the timelock, i.e. a passed proposal).
    function setFeeSplit(uint256 protocolBps, uint256 ownerBps, uint256 contributorsBps) external onlyOwner {
        _setFeeSplit(protocolBps, ownerBps, contributorsBps);
    }

    /// @notice Revert with the reason `setFeeSplit` would give for this split, or return normally; lets a
    ///         proposer check a split before spending a proposal on it.
    function checkFeeSplit(uint256 protocolBps, uint256 ownerBps, uint256 contributorsBps) public view {
        if (protocolBps > maxProtocolBps) revert FeeShareOutOfRange(bytes32("protocol"), protocolBps, 0, maxProtocolBps);
        if (ownerBps > maxOwnerBps) revert FeeShareOutOfRange(bytes32("owner"), ownerBps, 0, maxOwnerBps);
        if (contributorsBps < minContributorsBps || contributorsBps > BPS) {
            revert FeeShareOutOfRange(bytes32("contributors"), contributorsBps, minContributorsBps, BPS);
        }
        uint256 total = protocolBps + ownerBps + contributorsBps;
        if (total != BPS) revert FeeSplitNotWhole(BPS, total);
    }

    function _setFeeSplit(uint256 protocolBps, uint256 ownerBps, uint256 contributorsBps) private {
        checkFeeSplit(protocolBps, ownerBps, contributorsBps);
        feeSplit = FeeSplit(uint16(protocolBps), uint16(ownerBps), uint16(contributorsBps));
        uint256 version = ++feeSplitVersion;
        emit FeeSplitChanged(version, uint16(protocolBps), uint16(ownerBps), uint16(contributorsBps));
    }
}
