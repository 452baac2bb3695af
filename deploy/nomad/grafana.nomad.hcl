# Grafana with the RNS dashboards (deploy/grafana) provisioned: traffic and results
# from ClickHouse (Altinity's plugin), service health from Prometheus. Run from the
# repository root (the dashboards are read with file()):
#   nomad job run deploy/nomad/grafana.nomad.hcl
variable "grafana_image" {
  type    = string
  default = "grafana/grafana:11.3.0"
}

variable "clickhouse_url" {
  type    = string
  default = "http://clickhouse.service.consul:8123"
}

variable "prometheus_url" {
  type    = string
  default = "http://prometheus.service.consul:9090"
}

job "rns-grafana" {
  datacenters = ["dc1"]
  type        = "service"

  group "grafana" {
    count = 1

    network {
      port "http" {
        to = 3000
      }
    }

    service {
      name     = "grafana"
      port     = "http"
      provider = "consul"
      tags     = ["rns"]

      check {
        type     = "http"
        path     = "/api/health"
        interval = "10s"
        timeout  = "2s"
      }
    }

    task "grafana" {
      driver       = "docker"
      kill_timeout = "20s"

      config {
        image = var.grafana_image
        ports = ["http"]
        mount {
          type   = "bind"
          source = "local/provisioning"
          target = "/etc/grafana/provisioning"
        }
        mount {
          type   = "bind"
          source = "local/dashboards"
          target = "/var/lib/grafana/dashboards/rns"
        }
      }

      env {
        GF_INSTALL_PLUGINS     = "vertamedia-clickhouse-datasource"
        GF_AUTH_ANONYMOUS_ENABLED = "false"
        RNS_CLICKHOUSE_URL     = var.clickhouse_url
        RNS_PROMETHEUS_URL     = var.prometheus_url
      }

      # The repository's data source file, pointed at this cluster's addresses
      # (Grafana expands $RNS_CLICKHOUSE_URL and $RNS_PROMETHEUS_URL).
      template {
        data        = replace(replace(file("deploy/grafana/provisioning/datasources/rns.yaml"), "http://127.0.0.1:8123", "$RNS_CLICKHOUSE_URL"), "http://127.0.0.1:9090", "$RNS_PROMETHEUS_URL")
        destination = "local/provisioning/datasources/rns.yaml"
      }

      template {
        data        = file("deploy/grafana/provisioning/dashboards/rns.yaml")
        destination = "local/provisioning/dashboards/rns.yaml"
      }

      # Dashboards hold Prometheus legends like {{carrier}}: not a template here.
      template {
        data            = file("deploy/grafana/dashboards/rns-traffic.json")
        destination     = "local/dashboards/rns-traffic.json"
        left_delimiter  = "[[nomad["
        right_delimiter = "]nomad]]"
      }

      template {
        data            = file("deploy/grafana/dashboards/rns-services.json")
        destination     = "local/dashboards/rns-services.json"
        left_delimiter  = "[[nomad["
        right_delimiter = "]nomad]]"
      }

      resources {
        cpu    = 500
        memory = 512
      }
    }
  }
}
