// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";

/// @title Lineage's on-chain parameter registry, changed only by its owner (the timelock).
/// @notice Three governed parameters:
///         * the fee split: an inference fee is split between the protocol treasury, the model owner and the
///           data contributors in basis points (1 bps = 0.01%); the platform mirrors every `FeeSplitChanged`
///           into its database as a new fee-policy version that applies from the next fee;
///         * the epoch length: how often earnings epochs close, in seconds (`EpochLengthChanged`);
///         * the attribution share policy: the false-discovery rate at which credit groups are paid (in bps:
///           1,000 = 0.1) and the most credit groups paid per answer (`SharePolicyChanged`).
///         The epoch length and the share policy start unset (0): until a proposal sets them the platform's
///         own settings apply.
/// @dev Every parameter has bounds fixed at deployment (immutable), so even a passed proposal cannot, say,
///      give the contributors nothing or pay every group on noise: widening them takes a new registry.
///      A split must add up to exactly 10,000 bps.
contract ProtocolParameters is Ownable {
    uint256 public constant BPS = 10_000;

    struct FeeSplit {
        uint16 protocolBps;
        uint16 ownerBps;
        uint16 contributorsBps;
    }

    /// @notice Bounds of the epoch length and the share policy, fixed at deployment.
    struct PlatformBounds {
        uint256 minEpochLengthSeconds;
        uint256 maxEpochLengthSeconds;
        uint256 minAttributionFdrBps;
        uint256 maxAttributionFdrBps;
        uint256 minAttributionTopGroups;
        uint256 maxAttributionTopGroups;
    }

    uint256 public immutable maxProtocolBps;
    uint256 public immutable maxOwnerBps;
    uint256 public immutable minContributorsBps;
    uint256 public immutable minEpochLengthSeconds;
    uint256 public immutable maxEpochLengthSeconds;
    uint256 public immutable minAttributionFdrBps;
    uint256 public immutable maxAttributionFdrBps;
    uint256 public immutable minAttributionTopGroups;
    uint256 public immutable maxAttributionTopGroups;

    FeeSplit public feeSplit;
    /// @notice Number of splits set so far (the constructor's is 1).
    uint256 public feeSplitVersion;

    /// @notice Seconds between epoch closes; 0 until a proposal sets it.
    uint256 public epochLengthSeconds;
    uint256 public epochLengthVersion;

    /// @notice The share policy's false-discovery rate in bps and its most groups paid; 0 until set.
    uint256 public attributionFdrBps;
    uint256 public attributionTopGroups;
    uint256 public sharePolicyVersion;

    event FeeSplitChanged(uint256 indexed version, uint16 protocolBps, uint16 ownerBps, uint16 contributorsBps);
    event EpochLengthChanged(uint256 indexed version, uint256 epochLengthSeconds);
    event SharePolicyChanged(uint256 indexed version, uint256 attributionFdrBps, uint256 attributionTopGroups);

    // No error starts with a word that could read as a string's offset (`required` is 10,000, `share` and
    // `parameter` are text): web3's in-process test provider decodes any revert that parses as a string as
    // Error(string) when estimating gas, which would lose the error's name.

    /// @notice The shares add up to `total` bps instead of `required` (10,000).
    error FeeSplitNotWhole(uint256 required, uint256 total);
    /// @notice `share` ("protocol", "owner" or "contributors", as bytes32 text) is `value` bps, outside
    ///         [`min`, `max`].
    error FeeShareOutOfRange(bytes32 share, uint256 value, uint256 min, uint256 max);
    /// @notice `parameter` ("epoch length", "attribution fdr" or "attribution top groups", as bytes32 text) is
    ///         `value`, outside [`min`, `max`].
    error ParameterOutOfRange(bytes32 parameter, uint256 value, uint256 min, uint256 max);
    error BoundsInvalid();

    constructor(
        address initialOwner,
        uint256 maxProtocolBps_,
        uint256 maxOwnerBps_,
        uint256 minContributorsBps_,
        uint256 protocolBps,
        uint256 ownerBps,
        uint256 contributorsBps,
        PlatformBounds memory bounds
    ) Ownable(initialOwner) {
        if (maxProtocolBps_ > BPS || maxOwnerBps_ > BPS || minContributorsBps_ > BPS) revert BoundsInvalid();
        if (bounds.minEpochLengthSeconds == 0 || bounds.minEpochLengthSeconds > bounds.maxEpochLengthSeconds) {
            revert BoundsInvalid();
        }
        if (bounds.minAttributionFdrBps == 0 || bounds.minAttributionFdrBps > bounds.maxAttributionFdrBps
            || bounds.maxAttributionFdrBps >= BPS) revert BoundsInvalid();
        if (bounds.minAttributionTopGroups == 0 || bounds.minAttributionTopGroups > bounds.maxAttributionTopGroups) {
            revert BoundsInvalid();
        }
        maxProtocolBps = maxProtocolBps_;
        maxOwnerBps = maxOwnerBps_;
        minContributorsBps = minContributorsBps_;
        minEpochLengthSeconds = bounds.minEpochLengthSeconds;
        maxEpochLengthSeconds = bounds.maxEpochLengthSeconds;
        minAttributionFdrBps = bounds.minAttributionFdrBps;
        maxAttributionFdrBps = bounds.maxAttributionFdrBps;
        minAttributionTopGroups = bounds.minAttributionTopGroups;
        maxAttributionTopGroups = bounds.maxAttributionTopGroups;
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

    /// @notice Set how often earnings epochs close; only the owner (a passed proposal).
    function setEpochLength(uint256 lengthSeconds) external onlyOwner {
        checkEpochLength(lengthSeconds);
        epochLengthSeconds = lengthSeconds;
        emit EpochLengthChanged(++epochLengthVersion, lengthSeconds);
    }

    /// @notice Revert with the reason `setEpochLength` would give, or return normally.
    function checkEpochLength(uint256 lengthSeconds) public view {
        if (lengthSeconds < minEpochLengthSeconds || lengthSeconds > maxEpochLengthSeconds) {
            revert ParameterOutOfRange(bytes32("epoch length"), lengthSeconds, minEpochLengthSeconds,
                maxEpochLengthSeconds);
        }
    }

    /// @notice Set the attribution share policy (both values at once); only the owner (a passed proposal).
    function setSharePolicy(uint256 fdrBps, uint256 topGroups) external onlyOwner {
        checkSharePolicy(fdrBps, topGroups);
        attributionFdrBps = fdrBps;
        attributionTopGroups = topGroups;
        emit SharePolicyChanged(++sharePolicyVersion, fdrBps, topGroups);
    }

    /// @notice Revert with the reason `setSharePolicy` would give, or return normally.
    function checkSharePolicy(uint256 fdrBps, uint256 topGroups) public view {
        if (fdrBps < minAttributionFdrBps || fdrBps > maxAttributionFdrBps) {
            revert ParameterOutOfRange(bytes32("attribution fdr"), fdrBps, minAttributionFdrBps, maxAttributionFdrBps);
        }
        if (topGroups < minAttributionTopGroups || topGroups > maxAttributionTopGroups) {
            revert ParameterOutOfRange(bytes32("attribution top groups"), topGroups, minAttributionTopGroups,
                maxAttributionTopGroups);
        }
    }

    function _setFeeSplit(uint256 protocolBps, uint256 ownerBps, uint256 contributorsBps) private {
        checkFeeSplit(protocolBps, ownerBps, contributorsBps);
        feeSplit = FeeSplit(uint16(protocolBps), uint16(ownerBps), uint16(contributorsBps));
        uint256 version = ++feeSplitVersion;
        emit FeeSplitChanged(version, uint16(protocolBps), uint16(ownerBps), uint16(contributorsBps));
    }
}
