"""On-chain governance of Lineage's parameters (issue #20): vOPEN holders propose and vote on the fee
split through an OpenZeppelin Governor and timelock; this app records the deployment, mirrors proposals
and votes from the chain, and turns an executed change into a new rewards fee-policy version."""
