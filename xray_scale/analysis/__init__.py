"""Analysis: what is computed from decoded pixels. One image (:mod:`.image`), one batch image by
image (:mod:`.batch`) or as one stack (:mod:`.stack`), statistics (:mod:`.stats`), the maps'
names and dtypes (:mod:`.maps`), previews (:mod:`.previews`), and the types a batch task is
given and returns (:mod:`.records`)."""
