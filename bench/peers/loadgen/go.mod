module strata.local/bench/peers/loadgen

go 1.22
