"""Exact unlearning in online tabular RL: a rho-TV-stable UCBVI learner on a Gaussian binary tree, and
deletion by coupling the tree's nodes."""
