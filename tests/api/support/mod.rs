pub mod mangling_proxy;
pub mod tcp_proxy;
