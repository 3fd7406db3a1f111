"""Reading a store where researchers work: as an xarray tree (:mod:`.tree`), as a training set
for a data loader (:mod:`.images`), and the NIH finding labels both use (:mod:`.labels`)."""
