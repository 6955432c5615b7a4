//! Protocol wire structures (being written).
