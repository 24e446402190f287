fn main() { entangle_torch_link::emit_link_args(); }
