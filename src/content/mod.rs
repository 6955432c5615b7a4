//! MIMI content format (being written).
