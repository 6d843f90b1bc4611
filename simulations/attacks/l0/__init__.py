"""The l0 invariance attack on MNIST and the judges that accept its candidates."""
