"""Label Studio interoperability: Hardcase as a Label Studio ML backend, and importing Label Studio exports."""
