module mlmodel-operator/bench/openloop

go 1.22
