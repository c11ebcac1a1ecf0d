// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";

/// @title Cumulative Merkle distributor for Lineage contributor rewards.
/// @notice Each epoch the platform publishes one Merkle root over (account, cumulativeAmount) pairs,
///         where cumulativeAmount is everything the account has EVER earned. A claim pays only the
///         difference to what the account already claimed, so rotating the root never allows a
///         double claim and an account that skips epochs collects everything in one transaction.
/// @dev Leaves follow @openzeppelin/merkle-tree's StandardMerkleTree with ["address", "uint256"]:
///      keccak256(bytes.concat(keccak256(abi.encode(account, cumulativeAmount)))). The double hash
///      keeps a 64-byte leaf preimage from ever equalling an internal node (second-preimage attack).
contract CumulativeMerkleDistributor is Ownable2Step, Pausable {
    using SafeERC20 for IERC20;

    /// @notice The token paid out; immutable so a compromised owner cannot redirect the funds' meaning.
    IERC20 public immutable token;

    /// @notice The hot key the platform uses to publish roots; separate from the (cold) owner.
    address public rootUpdater;
    bytes32 public merkleRoot;
    uint256 public epoch;
    /// @notice Sum of everything ever paid out; with the balance it proves a new root is funded.
    uint256 public totalClaimed;
    /// @notice Cumulative amount already paid to each account.
    mapping(address account => uint256) public claimed;

    event Claimed(address indexed account, uint256 amount, uint256 cumulative);
    event RootUpdated(uint256 indexed epoch, bytes32 root, uint256 totalCumulative, bytes32 treeHash);
    event RootUpdaterChanged(address indexed previousUpdater, address indexed newUpdater);

    error ZeroAddress();
    error NotRootUpdater(address caller);
    error NotOwnerOrRootUpdater(address caller);
    error EpochNotIncreasing(uint256 currentEpoch, uint256 proposedEpoch);
    error Underfunded(uint256 available, uint256 totalCumulative);
    error NothingToClaim(address account, uint256 cumulativeAmount, uint256 alreadyClaimed);
    error InvalidProof(address account, uint256 cumulativeAmount);
    error LengthMismatch();

    constructor(IERC20 token_, address initialOwner, address rootUpdater_) Ownable(initialOwner) {
        if (address(token_) == address(0) || rootUpdater_ == address(0)) revert ZeroAddress();
        token = token_;
        rootUpdater = rootUpdater_;
        emit RootUpdaterChanged(address(0), rootUpdater_);
    }

    function setRootUpdater(address newUpdater) external onlyOwner {
        if (newUpdater == address(0)) revert ZeroAddress();
        emit RootUpdaterChanged(rootUpdater, newUpdater);
        rootUpdater = newUpdater;
    }

    /// @notice Publish the root of a new epoch.
    /// @param totalCumulative Sum of every leaf's cumulative amount; the root is refused unless the
    ///        contract can pay all of it (balance + already claimed), so a published proof never bounces.
    /// @param treeHash Hash of the off-chain tree dump, so anyone can fetch the dump and check it.
    function setMerkleRoot(bytes32 root, uint256 newEpoch, uint256 totalCumulative, bytes32 treeHash)
        external
        whenNotPaused
    {
        if (msg.sender != rootUpdater) revert NotRootUpdater(msg.sender);
        if (newEpoch <= epoch) revert EpochNotIncreasing(epoch, newEpoch);
        uint256 available = token.balanceOf(address(this)) + totalClaimed;
        if (available < totalCumulative) revert Underfunded(available, totalCumulative);
        merkleRoot = root;
        epoch = newEpoch;
        emit RootUpdated(newEpoch, root, totalCumulative, treeHash);
    }

    /// @notice Pay `account` whatever it has earned but not yet claimed. Anyone may submit (relayers,
    ///         the platform); the tokens always go to `account`.
    function claim(address account, uint256 cumulativeAmount, bytes32[] calldata proof)
        external
        whenNotPaused
    {
        uint256 already = claimed[account];
        if (cumulativeAmount <= already) revert NothingToClaim(account, cumulativeAmount, already);
        _pay(account, cumulativeAmount, already, proof);
    }

    /// @notice Relayed batch claim. An entry with nothing left to claim (already paid, or a duplicate
    ///         earlier in the same batch) is skipped rather than reverted, so one stale entry cannot
    ///         sink a whole relayed batch. An invalid proof still reverts: it means a bug upstream.
    function claimMany(address[] calldata accounts, uint256[] calldata amounts, bytes32[][] calldata proofs)
        external
        whenNotPaused
    {
        if (accounts.length != amounts.length || accounts.length != proofs.length) revert LengthMismatch();
        for (uint256 i = 0; i < accounts.length; ++i) {
            uint256 already = claimed[accounts[i]];
            if (amounts[i] > already) _pay(accounts[i], amounts[i], already, proofs[i]);
        }
    }

    /// @notice Stop claims and root updates. The root updater may pause too, so the platform's hot
    ///         key can react to a bad root at once; only the owner can resume.
    function pause() external {
        if (msg.sender != owner() && msg.sender != rootUpdater) revert NotOwnerOrRootUpdater(msg.sender);
        _pause();
    }

    function unpause() external onlyOwner {
        _unpause();
    }

    function _pay(address account, uint256 cumulativeAmount, uint256 already, bytes32[] calldata proof)
        private
    {
        bytes32 leaf = keccak256(bytes.concat(keccak256(abi.encode(account, cumulativeAmount))));
        if (!MerkleProof.verifyCalldata(proof, merkleRoot, leaf)) revert InvalidProof(account, cumulativeAmount);
        uint256 amount = cumulativeAmount - already;
        // Effects before the transfer: a re-entrant token sees the claim as already paid.
        claimed[account] = cumulativeAmount;
        totalClaimed += amount;
        token.safeTransfer(account, amount);
        emit Claimed(account, amount, cumulativeAmount);
    }
}
