"""The demo: a simulated cluster of network namespaces described by cluster.yaml, real traffic,
the real mapper and sniffer as separate processes, and the resulting edges and ClientIntents."""
