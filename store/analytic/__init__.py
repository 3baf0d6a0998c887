"""The analytic store: what full runs read (events, traits, identifiers, account links, profiles),
copied from the operational store into a columnar engine, DuckDB embedded or ClickHouse at scale."""
