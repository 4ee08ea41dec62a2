# Kept minimal: main.py does the work, so a bad main.py still leaves a REPL.
import gc

gc.collect()
