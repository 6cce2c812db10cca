//! shardcast engine (placeholder while the first modules land).
