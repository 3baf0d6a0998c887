"""A database written by the previous release opens under this one with every row kept."""

import sqlite3

from store import spaces
from store.store import Store

# The two tables as the previous release created them: both pointed at audiences only.
PREVIOUS_CONNECTION = """CREATE TABLE connection (
    id VARCHAR NOT NULL, space_id VARCHAR NOT NULL, audience_id VARCHAR NOT NULL, destination_id VARCHAR NOT NULL,
    id_sync_configuration JSON NOT NULL, connection_settings JSON NOT NULL, enabled BOOLEAN NOT NULL,
    created_at DATETIME NOT NULL, updated_at DATETIME NOT NULL, PRIMARY KEY (id), UNIQUE (audience_id, destination_id),
    FOREIGN KEY(space_id) REFERENCES space (id), FOREIGN KEY(audience_id) REFERENCES audience (id),
    FOREIGN KEY(destination_id) REFERENCES destination (id))"""
PREVIOUS_ACTIVATION = """CREATE TABLE activation (
    id VARCHAR NOT NULL, space_id VARCHAR NOT NULL, audience_id VARCHAR NOT NULL, connection_id VARCHAR NOT NULL,
    activation_type VARCHAR NOT NULL, activation_name VARCHAR NOT NULL, display_name VARCHAR,
    personalization JSON NOT NULL, destination_mapping JSON, enabled BOOLEAN NOT NULL, perform_resync BOOLEAN NOT NULL,
    created_at DATETIME NOT NULL, updated_at DATETIME NOT NULL, PRIMARY KEY (id),
    FOREIGN KEY(space_id) REFERENCES space (id), FOREIGN KEY(audience_id) REFERENCES audience (id),
    FOREIGN KEY(connection_id) REFERENCES connection (id))"""


def previous_release_database(path) -> str:
    """A database with a space, an audience, a destination, a connection and an activation, whose
    connection and activation tables have the previous release's foreign keys to `audience`."""
    url = f"sqlite:///{path}"
    store = Store(url)
    space_id = spaces.create_space(store, "Old").space.id
    store.close()
    db = sqlite3.connect(path)
    db.executescript(f"""
        DROP TABLE activation; DROP TABLE connection;
        {PREVIOUS_CONNECTION}; {PREVIOUS_ACTIVATION};
        CREATE INDEX ix_connection_space_id ON connection (space_id);
        CREATE INDEX ix_connection_audience_id ON connection (audience_id);
        CREATE INDEX ix_activation_space_id ON activation (space_id);
        CREATE INDEX ix_activation_audience_id ON activation (audience_id);
        CREATE INDEX ix_activation_connection_id ON activation (connection_id);
        INSERT INTO audience VALUES ('aud_1', '{space_id}', 'old', 'Old', NULL, 1, 'USERS', 'event(''A'').count() >= 1',
            NULL, '{{}}', 'Live', 'REALTIME', '', 'me', 'me', '2026-01-01 00:00:00', '2026-01-01 00:00:00', NULL);
        INSERT INTO destination VALUES ('dst_1', '{space_id}', 'webhooks-actions', 'Hook', '{{}}', 1,
            '2026-01-01 00:00:00', '2026-01-01 00:00:00');
        INSERT INTO connection VALUES ('ii_1', '{space_id}', 'aud_1', 'dst_1', '[]', '{{}}', 1,
            '2026-01-01 00:00:00', '2026-01-01 00:00:00');
        INSERT INTO activation VALUES ('act_1', '{space_id}', 'aud_1', 'ii_1', 'Audience Entered', 'Sync', NULL,
            '{{"profile": {{"properties": []}}}}', NULL, 1, 0, '2026-01-01 00:00:00', '2026-01-01 00:00:00');
    """)
    db.commit()
    db.close()
    return url


def foreign_keys(path, table):
    with sqlite3.connect(path) as db:
        return {(row[3], row[2]) for row in db.execute(f"PRAGMA foreign_key_list({table})")}


def test_connections_and_activations_lose_their_audience_only_foreign_key_and_keep_their_rows(tmp_path):
    path = tmp_path / "old.db"
    url = previous_release_database(path)
    assert ("audience_id", "audience") in foreign_keys(path, "connection")

    Store(url).close()

    assert foreign_keys(path, "connection") == {("space_id", "space"), ("destination_id", "destination")}
    assert foreign_keys(path, "activation") == {("space_id", "space"), ("connection_id", "connection")}
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT id, audience_id, destination_id FROM connection").fetchall() == [("ii_1", "aud_1", "dst_1")]
        assert db.execute("SELECT id, connection_id FROM activation").fetchall() == [("act_1", "ii_1")]
        assert db.execute("PRAGMA foreign_key_check").fetchall() == []
        indexes = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert {"ix_connection_audience_id", "ix_activation_connection_id"} <= indexes
    Store(url).close()  # a second start finds nothing left to do
