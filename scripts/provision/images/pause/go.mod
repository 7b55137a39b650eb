module cninfra-sidecar/provision/pause

go 1.26.0
