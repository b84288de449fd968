module artstore/storage-element/tools/loadtool

go 1.26.0
