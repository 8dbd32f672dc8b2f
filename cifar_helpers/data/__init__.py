"""CIFAR-10 from whatever copy a machine has (loaded, checked, cached), generated stand-in data, and the data set
resident on the training device."""
