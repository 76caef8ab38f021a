"""SFT warm-up: the same jsonl as GRPO, turned into supervised examples for LLaMA-Factory or the built-in trainer.

* :mod:`geo_r.sft.examples`: records -> (question, answer) examples; the answer is the record's own gpt turn
  when it follows the answer contract, else a Chain-of-Region answer rendered from its chain and coordinates.
* :mod:`geo_r.sft.export`: ``geo-r export-sft``, a LLaMA-Factory sharegpt file + its ``dataset_info.json`` entry.
* :mod:`geo_r.sft.data`: the prompt-completion dataset TRL's ``SFTTrainer`` reads (loss on the answer only).
* :mod:`geo_r.sft.train`: ``geo-r sft`` / ``torchrun -m geo_r.sft.train``, the built-in SFT, whose output
  folder ``grpo_jsonl.py`` loads as ``--model_name_or_path``.

Importing this package is cheap: nothing heavy loads until a function needs it.
"""
