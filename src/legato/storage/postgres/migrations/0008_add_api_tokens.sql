-- Bearer tokens of the HTTP API and the console: their SHA-256 digest, never the secret.
CREATE TABLE api_tokens (
    name       TEXT PRIMARY KEY,              -- who did it, in operator actions' records
    digest     TEXT NOT NULL UNIQUE,          -- hex SHA-256 of the secret
    scope      TEXT NOT NULL,                 -- read | operate | admin
    created_at DOUBLE PRECISION NOT NULL,
    revoked_at DOUBLE PRECISION
);
