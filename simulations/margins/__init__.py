"""MNIST's oracle margin bounded from the data: exact nearest training images by class under
l0/l1/l2/l-inf and the transformation-invariant l2, 1-NN accuracy, separation."""
