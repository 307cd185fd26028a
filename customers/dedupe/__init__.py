"""Duplicate customers and merging them (疑似重复客户与合并), shaped like `imports/` and `exports/`:

- `keys.py`: normalisation keys (email, phone, name, city) — pure functions, no database;
- `scan.py`: finding candidate pairs for a whole scope in bulk (`duplicate_scan`, `DuplicateScan`);
- `cache.py`: cache keys and versions of a finished scan, per tenant and visibility scope;
- `jobs.py`: the background scan of a big scope (`duplicate_scan_run`, started by `tasks.py`);
- `selectors.py`: reads (the scan a page shows, a customer's exact matches, merge records);
- `fields.py`: the fields a user chooses between on the merge page, and their values;
- `services.py`: writes (`customer_merge`, `customer_merge_undo`, `duplicate_dismiss`);
- `hooks.py`: the customers app's own merge hooks (orders, events, tags, shares);
- `views.py`, `urls.py`: the duplicates list, the merge page, its result and undo.
"""
