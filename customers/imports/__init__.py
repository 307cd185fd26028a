"""Import customers and orders (with line items) from CSV and XLSX files.

The steps a user walks through, each a module here:

- `parsing`: read the uploaded file (UTF-8, UTF-8 with BOM, GB18030 CSV, or XLSX) into header and rows;
- `columns` / `mapping`: what a column can be mapped to, and the guess from English and Chinese headers;
- `validation`: check every row (pure Python, no database), producing clean values and row errors;
- `planning`: match rows to existing customers and orders, decide create / update / skip, compute diffs;
- `writing`: bulk writes (COPY into a temporary staging table, then INSERT ... SELECT / UPDATE ... FROM);
- `services`: the job around it (upload, mapping, preview, import), used by views, tasks and benchmarks.
"""
