"""``xray-scale bench``: how fast each stage and a whole run are here (:mod:`.benchmark`)."""
