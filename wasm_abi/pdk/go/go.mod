module eventgateway/pdk

go 1.24
