-- The items table: the same fields the embedded store keeps. Ids are UUID v7, so the primary
-- key's order is creation order.
CREATE TABLE items (
    id         uuid PRIMARY KEY,
    name       text NOT NULL,
    note       text,
    created_at text NOT NULL
);
