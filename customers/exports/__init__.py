"""Export customers: the filtered list as CSV or XLSX (streamed when small, a background job when
large), and a manager-only zip of all the tenant's customer data (customers, orders and lines,
refunds, behaviour events) for data portability."""
