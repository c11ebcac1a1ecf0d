// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";

/// @title Contributor stakes: OPEN locked per contributor and Datanet, slashable for spam.
/// @notice A Datanet's owner may ask contributors to lock OPEN before they contribute. A stake is
///         `active` until its holder asks to unstake; it then waits `cooldownSeconds` as `unstaking`
///         and can be withdrawn after that. Both parts stay slashable: the platform (`SLASHER_ROLE`)
///         sends part of a stake to the Datanet's reward pool, held here per Datanet, when the
///         contributor's rows are rejected as spam, naming the evidence (a hash of the rejected rows and
///         their reasons, published by the platform). One slash takes at most `maxSlashBps` of the
///         stake. The pool is paid out (to the rewards distributor) only by the same role.
/// @dev Every state-changing call by a contributor carries a `requestId` and a slash its `evidenceHash`:
///      each id is used once, so a platform that resends after losing an answer cannot stake, unstake or
///      slash twice. The admin (the governance timelock in deployment) grants and revokes the roles.
contract ContributorStakes is AccessControl {
    using SafeERC20 for IERC20;

    uint256 public constant BPS = 10_000;
    bytes32 public constant SLASHER_ROLE = keccak256("SLASHER_ROLE");

    struct Stake {
        uint256 active;
        uint256 unstaking;
        uint64 unlockAt;
    }

    IERC20 public immutable token;
    uint256 public immutable cooldownSeconds;
    uint256 public immutable maxSlashBps;

    mapping(address account => mapping(uint256 datanetId => Stake)) private _stakes;
    /// @notice Slashed OPEN waiting to be paid to each Datanet's contributors.
    mapping(uint256 datanetId => uint256) public rewardPool;
    mapping(bytes32 requestId => bool) public requestUsed;
    uint256 public totalActive;
    uint256 public totalUnstaking;
    uint256 public totalPools;

    event Staked(address indexed account, uint256 indexed datanetId, uint256 amount, bytes32 requestId);
    event UnstakeRequested(address indexed account, uint256 indexed datanetId, uint256 amount, uint64 unlockAt,
        bytes32 requestId);
    event Withdrawn(address indexed account, uint256 indexed datanetId, uint256 amount);
    event Slashed(address indexed account, uint256 indexed datanetId, uint256 fromActive, uint256 fromUnstaking,
        bytes32 evidenceHash);
    event PoolReleased(uint256 indexed datanetId, address indexed to, uint256 amount);

    // Every error leads with an address or a hash, never a small number: web3's in-process test provider
    // reads a revert whose first word could be a string offset as Error(string) and loses the name.

    error ZeroAmount(address account);
    error RequestAlreadyUsed(bytes32 requestId);
    /// @notice `account` asked to unstake `requested` from Datanet `datanetId` but has `active` staked there.
    error StakeTooSmall(address account, uint256 datanetId, uint256 active, uint256 requested);
    error NothingUnstaking(address account, uint256 datanetId);
    /// @notice The cooldown of `account`'s unstaking on `datanetId` ends at `unlockAt` (now: `nowSeconds`).
    error CooldownNotOver(address account, uint256 datanetId, uint256 unlockAt, uint256 nowSeconds);
    /// @notice A slash of `amount` is above `maxAmount` (`maxSlashBps` of the stake).
    error SlashTooLarge(address account, uint256 datanetId, uint256 amount, uint256 maxAmount);
    error PoolTooSmall(address to, uint256 datanetId, uint256 available, uint256 requested);
    error SettingsInvalid();

    constructor(IERC20 token_, address admin, address slasher, uint256 cooldownSeconds_, uint256 maxSlashBps_) {
        if (address(token_) == address(0) || admin == address(0) || maxSlashBps_ == 0 || maxSlashBps_ > BPS) {
            revert SettingsInvalid();
        }
        token = token_;
        cooldownSeconds = cooldownSeconds_;
        maxSlashBps = maxSlashBps_;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        if (slasher != address(0)) _grantRole(SLASHER_ROLE, slasher);
    }

    function stakeOf(address account, uint256 datanetId)
        external
        view
        returns (uint256 active, uint256 unstaking, uint64 unlockAt)
    {
        Stake storage s = _stakes[account][datanetId];
        return (s.active, s.unstaking, s.unlockAt);
    }

    /// @notice Lock `amount` OPEN (approved to this contract beforehand) on Datanet `datanetId`.
    function stake(uint256 datanetId, uint256 amount, bytes32 requestId) external {
        if (amount == 0) revert ZeroAmount(msg.sender);
        _use(requestId);
        _stakes[msg.sender][datanetId].active += amount;
        totalActive += amount;
        token.safeTransferFrom(msg.sender, address(this), amount);
        emit Staked(msg.sender, datanetId, amount, requestId);
    }

    /// @notice Start the cooldown of `amount` of one's active stake; asking again restarts the cooldown of
    ///         everything unstaking on that Datanet.
    function requestUnstake(uint256 datanetId, uint256 amount, bytes32 requestId) external {
        if (amount == 0) revert ZeroAmount(msg.sender);
        Stake storage s = _stakes[msg.sender][datanetId];
        if (amount > s.active) revert StakeTooSmall(msg.sender, datanetId, s.active, amount);
        _use(requestId);
        s.active -= amount;
        s.unstaking += amount;
        s.unlockAt = uint64(block.timestamp + cooldownSeconds);
        totalActive -= amount;
        totalUnstaking += amount;
        emit UnstakeRequested(msg.sender, datanetId, amount, s.unlockAt, requestId);
    }

    /// @notice Take back everything unstaking on `datanetId` once its cooldown is over.
    function withdraw(uint256 datanetId) external {
        Stake storage s = _stakes[msg.sender][datanetId];
        uint256 amount = s.unstaking;
        if (amount == 0) revert NothingUnstaking(msg.sender, datanetId);
        if (block.timestamp < s.unlockAt) revert CooldownNotOver(msg.sender, datanetId, s.unlockAt, block.timestamp);
        s.unstaking = 0;
        s.unlockAt = 0;
        totalUnstaking -= amount;
        token.safeTransfer(msg.sender, amount);
        emit Withdrawn(msg.sender, datanetId, amount);
    }

    /// @notice Move `amount` of `account`'s stake on `datanetId` (active first, then unstaking) to the
    ///         Datanet's reward pool, for the rows named by `evidenceHash`.
    function slash(address account, uint256 datanetId, uint256 amount, bytes32 evidenceHash)
        external
        onlyRole(SLASHER_ROLE)
    {
        if (amount == 0) revert ZeroAmount(account);
        Stake storage s = _stakes[account][datanetId];
        uint256 maxAmount = (s.active + s.unstaking) * maxSlashBps / BPS;
        if (amount > maxAmount) revert SlashTooLarge(account, datanetId, amount, maxAmount);
        _use(evidenceHash);
        uint256 fromActive = amount < s.active ? amount : s.active;
        uint256 fromUnstaking = amount - fromActive;
        s.active -= fromActive;
        s.unstaking -= fromUnstaking;
        totalActive -= fromActive;
        totalUnstaking -= fromUnstaking;
        rewardPool[datanetId] += amount;
        totalPools += amount;
        emit Slashed(account, datanetId, fromActive, fromUnstaking, evidenceHash);
    }

    /// @notice Pay `amount` of Datanet `datanetId`'s pool to `to` (the rewards distributor, to fund the
    ///         Datanet's contributors' earnings).
    function releasePool(uint256 datanetId, address to, uint256 amount) external onlyRole(SLASHER_ROLE) {
        if (amount == 0) revert ZeroAmount(to);
        if (amount > rewardPool[datanetId]) revert PoolTooSmall(to, datanetId, rewardPool[datanetId], amount);
        rewardPool[datanetId] -= amount;
        totalPools -= amount;
        token.safeTransfer(to, amount);
        emit PoolReleased(datanetId, to, amount);
    }

    function _use(bytes32 requestId) private {
        if (requestUsed[requestId]) revert RequestAlreadyUsed(requestId);
        requestUsed[requestId] = true;
    }
}
