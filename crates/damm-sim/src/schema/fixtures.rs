//! Sample bodies in the providers' documented shapes, shared by the validator's tests and
//! the jsonschema comparison harness in `eval/jsonschema` (which includes this file).

use serde_json::{Value, json};

pub(crate) fn hetzner_location() -> Value {
    json!({
        "id": 1,
        "name": "fsn1",
        "description": "Falkenstein DC Park 1",
        "country": "DE",
        "city": "Falkenstein",
        "latitude": 50.47612,
        "longitude": 12.370071,
        "network_zone": "eu-central"
    })
}

pub(crate) fn hetzner_server() -> Value {
    json!({
        "id": 42,
        "name": "my-server",
        "status": "running",
        "created": "2016-01-30T23:55:00Z",
        "public_net": {
            "ipv4": {
                "id": 42, "ip": "1.2.3.4", "blocked": false, "dns_ptr": "server01.example.com"
            },
            "ipv6": {
                "id": 42,
                "ip": "2001:db8::/64",
                "blocked": false,
                "dns_ptr": [{ "ip": "2001:db8::1", "dns_ptr": "server.example.com" }]
            },
            "floating_ips": [478],
            "firewalls": [{ "id": 42, "status": "applied" }]
        },
        "private_net": [],
        "server_type": {
            "id": 1,
            "name": "cpx22",
            "description": "CPX22",
            "cores": 2,
            "memory": 4.0,
            "disk": 80,
            "deprecated": false,
            "prices": [{
                "location": "fsn1",
                "price_hourly": { "net": "1.0000", "gross": "1.1900" },
                "price_monthly": { "net": "1.0000", "gross": "1.1900" },
                "included_traffic": 21990232555520_i64,
                "price_per_tb_traffic": { "net": "1.0000", "gross": "1.1900" }
            }],
            "storage_type": "local",
            "cpu_type": "shared",
            "architecture": "x86",
            "locations": [{ "id": 1, "name": "fsn1", "deprecation": null }]
        },
        "datacenter": {
            "id": 1,
            "name": "fsn1-dc8",
            "description": "Falkenstein 1 virtual DC 8",
            "location": hetzner_location(),
            "server_types": {
                "supported": [1], "available": [1], "available_for_migration": [1]
            }
        },
        "location": hetzner_location(),
        "image": {
            "id": 42,
            "type": "system",
            "status": "available",
            "name": "ubuntu-24.04",
            "description": "Ubuntu 24.04 Standard 64 bit",
            "image_size": null,
            "disk_size": 10,
            "created": "2016-01-30T23:55:00Z",
            "created_from": null,
            "bound_to": null,
            "os_flavor": "ubuntu",
            "os_version": "24.04",
            "rapid_deploy": false,
            "protection": { "delete": false },
            "deprecated": null,
            "deleted": null,
            "labels": {},
            "architecture": "x86"
        },
        "iso": null,
        "rescue_enabled": false,
        "locked": false,
        "backup_window": null,
        "outgoing_traffic": 123456,
        "ingoing_traffic": 123456,
        "included_traffic": 654321,
        "protection": { "delete": false, "rebuild": false },
        "labels": { "environment": "prod", "example.com/my": "label" },
        "volumes": [],
        "load_balancers": [],
        "primary_disk_size": 50,
        "placement_group": null
    })
}

pub(crate) fn hetzner_list_servers() -> Value {
    json!({
        "servers": [hetzner_server()],
        "meta": {
            "pagination": {
                "page": 1,
                "per_page": 25,
                "previous_page": null,
                "next_page": null,
                "last_page": 1,
                "total_entries": 1
            }
        }
    })
}

pub(crate) fn do_droplet() -> Value {
    json!({
        "id": 3164444,
        "name": "example.com",
        "memory": 1024,
        "vcpus": 1,
        "disk": 25,
        "locked": false,
        "status": "active",
        "created_at": "2020-07-21T18:37:44Z",
        "features": ["backups", "ipv6"],
        "backup_ids": [],
        "next_backup_window": null,
        "snapshot_ids": [],
        "image": {
            "id": 63663980,
            "name": "20.04 (LTS) x64",
            "distribution": "Ubuntu",
            "slug": "ubuntu-20-04-x64",
            "public": true,
            "regions": ["nyc3"],
            "min_disk_size": 20,
            "type": "base"
        },
        "volume_ids": [],
        "size": {
            "slug": "s-1vcpu-1gb",
            "memory": 1024,
            "vcpus": 1,
            "disk": 25,
            "transfer": 1.0,
            "price_monthly": 5,
            "price_hourly": 0.00743999984115362,
            "regions": ["nyc3"],
            "available": true,
            "description": "Basic"
        },
        "size_slug": "s-1vcpu-1gb",
        "networks": {
            "v4": [{
                "ip_address": "104.236.32.182",
                "netmask": "255.255.192.0",
                "gateway": "104.236.0.1",
                "type": "public"
            }],
            "v6": []
        },
        "region": {
            "name": "New York 3",
            "slug": "nyc3",
            "features": ["backups"],
            "available": true,
            "sizes": ["s-1vcpu-1gb"]
        },
        "tags": []
    })
}
