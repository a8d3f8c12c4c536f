pub mod tcp_proxy;
