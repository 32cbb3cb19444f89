//! placeholder: filled by the masking branch
