module asocial.local/devcluster/node/pause

go 1.26.0
