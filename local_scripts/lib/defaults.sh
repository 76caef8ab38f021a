# Sourced by the other libraries here (env.sh, slurm.sh): the defaults every launcher shares, in one place.
# They equal geo_r/defaults.py (DEFAULT_MAX_PIXELS, DEFAULT_MIN_PIXELS, DEFAULT_DIST_TIMEOUT_S, DEFAULT_MASTER_PORT)
# and the LLaMA-Factory yamls' image_max_pixels; tests/test_layout.py checks that they agree.
GEO_R_DEFAULT_MAX_PIXELS=401408   # at most 512 image tokens per photo on Qwen2.5-VL
GEO_R_DEFAULT_MIN_PIXELS=3136     # the Qwen-VL processors' own minimum (4 image tokens)
GEO_R_DEFAULT_DIST_TIMEOUT=1800   # seconds a collective waits for a silent rank (--ddp_timeout)
GEO_R_DEFAULT_MASTER_PORT=29500   # torchrun's rendezvous port on node 0
