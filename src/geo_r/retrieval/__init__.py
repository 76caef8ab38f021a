"""Retrieval for geolocation: embed a gallery of geotagged photos once, then find every query photo's nearest
gallery rows and write them to a neighbours file keyed by query id, so SFT, GRPO, eval and the app read
neighbours without ever loading the index (as G3 and GeoRanker ship theirs).

``geo-r index`` (:mod:`geo_r.retrieval.index_cli`) writes an index folder:

* ``manifest.json``: what built it (encoder, model path, dimension, count, index type, package versions, the
  data files with a content digest of each); written last, so its presence means the folder is complete;
* ``embeddings.npy``: N x d float16, L2-normalised, memory-mappable; row i is line i of ``rows.jsonl``;
* ``rows.jsonl``: each row's ``id``, ``lat``, ``lon``, chain, ``author``, ``digest`` (of the image bytes) and
  ``source`` (``file:line``);
* ``index.faiss``: a FAISS index over the embeddings (exact inner product by default, IVF-PQ behind a flag);
* ``shards/`` while embedding: the resumable pieces, removed once merged.

``geo-r retrieve`` (:mod:`geo_r.retrieval.retrieve_cli`) writes the neighbours file
(its format: :mod:`geo_r.data.neighbours`). Submodules are imported explicitly; importing this package is free.
"""
