"""`xrobust-report`: read a sweep's results, compare settings per language with intervals and corrected significance.

collect.py reads every job below a folder (item_rows.py its predictions) and labels it by the config keys that
differ across the sweep (identity.py); sizes.py says which models are larger and which pairs to compare;
item_contrasts.py pairs test items, contrast_estimate.py estimates one contrast with bootstrap.py (t(k - 1) seed
part and item bootstrap, permutation test) and corrections.py (Holm, Benjamini-Hochberg); pairing.py pairs settings
along the compared axis; selection.py chooses learning rates on English dev, seeds.py the seeds every table shares,
readouts.py names the classifier behind each read-out; tables.py, diff_tables.py and latex.py write the tables,
plots.py the PNGs, wandb_tables.py the optional W&B upload, cli.py the console entry. docs/report-statistics.md
explains the statistics.
"""
