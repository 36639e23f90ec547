//! `husk pod …`: printing over the engine's pods (husk_engine::pod).

use crate::cli::PodCmd;
use crate::format::{print_rows, Format};
use crate::Failure;
use husk_engine::{Engine, PodOptions};
use std::time::Duration;

/// podman's `pod ps` columns, and the column names of every field a template can use.
const POD_TABLE: &str =
    "table {{.ID}}\t{{.Name}}\t{{.Status}}\t{{.Created}}\t{{.InfraID}}\t{{.NumberOfContainers}}";
const POD_HEADERS: &[(&str, &str)] = &[
    ("ID", "POD ID"),
    ("Name", "NAME"),
    ("Status", "STATUS"),
    ("Created", "CREATED"),
    ("CreatedAt", "CREATED AT"),
    ("InfraID", "INFRA ID"),
    ("NumberOfContainers", "# OF CONTAINERS"),
    ("Labels", "LABELS"),
];

/// One `pod ls` row (podman's field names).
#[derive(serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct PodRow {
    #[serde(rename = "ID")]
    id: String,
    name: String,
    status: String,
    /// `5 seconds ago`.
    created: String,
    created_at: String,
    #[serde(rename = "InfraID")]
    infra_id: String,
    number_of_containers: usize,
    labels: String,
}

pub fn run(e: &Engine, cmd: PodCmd) -> Result<(), Failure> {
    match cmd {
        PodCmd::Create {
            name,
            network,
            label,
            publish,
        } => {
            let id = e.pod_create(&PodOptions {
                name,
                network,
                labels: label,
                publish,
                hostname: None,
            })?;
            println!("{id}");
        }
        PodCmd::Ls {
            quiet,
            no_trunc,
            format,
        } => {
            let now = husk_engine::views::now();
            let short = |id: &str| match no_trunc {
                true => id.to_string(),
                false => id[..id.len().min(12)].to_string(),
            };
            let rows: Vec<PodRow> = e
                .pods()
                .into_iter()
                .map(|p| PodRow {
                    id: short(&p.id),
                    name: p.name,
                    status: p.status.to_string(),
                    created: format!(
                        "{} ago",
                        husk_engine::views::human_duration(husk_engine::views::since(
                            &p.created, now
                        ))
                    ),
                    created_at: p.created,
                    infra_id: short(&p.infra_id),
                    number_of_containers: p.containers.len(),
                    labels: p
                        .labels
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(","),
                })
                .collect();
            if quiet {
                for r in &rows {
                    println!("{}", r.id);
                }
                return Ok(());
            }
            print_rows(
                &rows,
                &Format::parse(format.as_deref(), POD_TABLE),
                POD_HEADERS,
            )?;
        }
        PodCmd::Inspect { pods } => {
            let all = pods
                .iter()
                .map(|p| e.pod_inspect(p))
                .collect::<Result<Vec<_>, _>>()?;
            println!("{}", serde_json::to_string_pretty(&all).unwrap());
        }
        PodCmd::Start { pods } => {
            for p in pods {
                println!("{}", e.pod_start(&p)?);
            }
        }
        PodCmd::Stop { time, pods } => {
            for p in pods {
                println!("{}", e.pod_stop(&p, Duration::from_secs(time))?);
            }
        }
        PodCmd::Rm { force, pods } => {
            for p in pods {
                println!("{}", e.pod_remove(&p, force)?);
            }
        }
    }
    Ok(())
}
