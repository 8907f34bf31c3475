"""The embedded default: a small shop database (SQLite) so the database tools work with no
configuration. Made once, deterministically, under the execution dir."""

from __future__ import annotations

import os
import random
import sqlite3
from datetime import date, timedelta
from pathlib import Path

SAMPLE_NAME = "sample.db"

SCHEMA = """
CREATE TABLE customers (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    email TEXT NOT NULL UNIQUE,
    region TEXT NOT NULL,
    signup_date DATE NOT NULL
);
CREATE TABLE products (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    category TEXT NOT NULL,
    price NUMERIC(10, 2) NOT NULL
);
CREATE TABLE orders (
    id INTEGER PRIMARY KEY,
    customer_id INTEGER NOT NULL REFERENCES customers(id),
    order_date DATE NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('placed', 'shipped', 'returned'))
);
CREATE TABLE order_items (
    order_id INTEGER NOT NULL REFERENCES orders(id),
    product_id INTEGER NOT NULL REFERENCES products(id),
    quantity INTEGER NOT NULL,
    unit_price NUMERIC(10, 2) NOT NULL,
    PRIMARY KEY (order_id, product_id)
);
CREATE INDEX orders_customer ON orders(customer_id);
CREATE INDEX orders_date ON orders(order_date);
CREATE VIEW revenue_by_region AS
    SELECT c.region, SUM(i.quantity * i.unit_price) AS revenue, COUNT(DISTINCT o.id) AS orders
    FROM orders o JOIN customers c ON c.id = o.customer_id
    JOIN order_items i ON i.order_id = o.id
    WHERE o.status != 'returned'
    GROUP BY c.region;
"""

REGIONS = ["north", "south", "east", "west"]
CATEGORIES = {
    "books": ["Atlas", "Cookbook", "Novel", "Poetry", "Field guide"],
    "garden": ["Rake", "Hose", "Seeds", "Planter", "Gloves"],
    "kitchen": ["Kettle", "Pan", "Knife", "Grinder", "Scale"],
    "office": ["Lamp", "Notebook", "Chair", "Stapler", "Desk mat"],
}


def ensure_sample_database(directory: Path) -> Path:
    """Return the sample database's path, making it first when missing."""
    path = directory / SAMPLE_NAME
    if path.is_file():
        return path
    directory.mkdir(parents=True, exist_ok=True)
    partial = directory / f".{SAMPLE_NAME}.{os.getpid()}"
    partial.unlink(missing_ok=True)
    conn = sqlite3.connect(partial)
    try:
        conn.executescript(SCHEMA)
        _fill(conn, random.Random(20240601))
        conn.commit()
    finally:
        conn.close()
    os.replace(partial, path)  # atomic: a concurrent start sees all of it or none
    return path


def _fill(conn: sqlite3.Connection, rng: random.Random) -> None:
    start = date(2024, 1, 1)
    customers = [
        (i, f"Customer {i}", f"customer{i}@example.com", rng.choice(REGIONS),
         (start + timedelta(days=rng.randrange(365))).isoformat())
        for i in range(1, 61)
    ]  # fmt: skip
    conn.executemany("INSERT INTO customers VALUES (?, ?, ?, ?, ?)", customers)
    products: list[tuple[int, str, str, float]] = []
    for category, names in CATEGORIES.items():
        for name in names:
            products.append((len(products) + 1, name, category, round(rng.uniform(3, 120), 2)))
    conn.executemany("INSERT INTO products VALUES (?, ?, ?, ?)", products)
    for order_id in range(1, 401):
        conn.execute(
            "INSERT INTO orders VALUES (?, ?, ?, ?)",
            (
                order_id,
                rng.randrange(1, len(customers) + 1),
                (start + timedelta(days=rng.randrange(540))).isoformat(),
                rng.choices(["placed", "shipped", "returned"], weights=[2, 7, 1])[0],
            ),
        )
        for product in rng.sample(products, rng.randint(1, 4)):
            conn.execute(
                "INSERT INTO order_items VALUES (?, ?, ?, ?)",
                (order_id, product[0], rng.randint(1, 5), product[3]),
            )
