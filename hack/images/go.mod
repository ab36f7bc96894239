module aisre.local/images

go 1.22
