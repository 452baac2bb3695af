# ClickHouse for RNS: every message and event, statistics and the dashboards' data.
# rns-analytics creates the schema at start. Data on a host volume (clickhouse).
#   nomad job run deploy/nomad/clickhouse.nomad.hcl
variable "clickhouse_image" {
  type    = string
  default = "clickhouse/clickhouse-server:24.8"
}

job "rns-clickhouse" {
  datacenters = ["dc1"]
  type        = "service"

  group "clickhouse" {
    count = 1

    volume "data" {
      type      = "host"
      source    = "clickhouse"
      read_only = false
    }

    network {
      port "http" {
        static = 8123
      }
    }

    service {
      name     = "clickhouse"
      port     = "http"
      provider = "consul"
      tags     = ["rns"]

      check {
        type     = "http"
        path     = "/ping"
        interval = "5s"
        timeout  = "2s"
      }
    }

    task "clickhouse" {
      driver       = "docker"
      kill_timeout = "60s"

      volume_mount {
        volume      = "data"
        destination = "/var/lib/clickhouse"
      }

      config {
        image = var.clickhouse_image
        ports = ["http"]

        ulimit {
          nofile = "262144:262144"
        }
      }

      resources {
        cpu    = 4000
        memory = 8192
      }
    }
  }
}
