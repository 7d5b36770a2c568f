//! A plugin that opens a TCP connection in `detect`; using the network
//! makes the component import `wasi:sockets`, which salve never links.

use std::cmp::Ordering;

use salve_plugin_sdk::prelude::*;

struct HostileNet;

impl Plugin for HostileNet {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "hostile-net".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            kind: PackageKind::Library,
            report_types: vec!["hostile-net-pkg".into()],
            default_sources: vec![],
            always_latest: vec![],
        }
    }

    fn parse_version(v: &str) -> Result<VersionInfo, String> {
        Ok(VersionInfo {
            normalized: v.into(),
            prerelease: false,
        })
    }

    fn compare(a: &str, b: &str) -> Result<Ordering, String> {
        Ok(a.cmp(b))
    }

    fn detect(_: &Image, _: &ImageContext, _: &Answers) -> Result<Detected, Error> {
        let stream = std::net::TcpStream::connect("151.101.0.223:443")
            .map_err(|e| Error::Failed(format!("connect: {e}")))?;
        Err(Error::Failed(format!(
            "connected from {:?}",
            stream.local_addr()
        )))
    }

    fn plan(
        _: &Image,
        _: &[PackageUpdate],
        _: &PlanContext,
        _: &Answers,
    ) -> Result<Planned, Error> {
        Ok(Planned::Tasks(vec![]))
    }
}

salve_plugin_sdk::export_plugin!(HostileNet);
