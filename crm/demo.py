"""Demo data: `seed_demo` creates the demo users, then asks every app for its part.

Each app adds a `seed(*, users, customers, rng, stdout)` function to SEEDERS (in order: customers
first, then the apps that read them). Seeders must be fast at 100,000 customers (bulk writes / COPY)
and idempotent enough that running seed_demo twice does not double the demo users.
"""

DEMO_PASSWORD = "demo-pass-2026"
DEMO_USERS = (
    # email, name, role
    ("admin@demo.example", "Alex Admin", "admin"),
    ("manager@demo.example", "王经理 Wang Li", "manager"),
    ("sales@demo.example", "Sam Sales", "sales"),
    ("sales2@demo.example", "李娜 Li Na", "sales"),
)

SEEDERS: list[str] = [
    "customers.demo.seed",
    "segmentation.demo.seed",
    "interactions.demo.seed",
    "interactions.followups.demo.seed",
    "loyalty.demo.seed",
    "loyalty.rewards.demo.seed",
    "interactions.service.demo.seed",
    "interactions.surveys.demo.seed",
]
