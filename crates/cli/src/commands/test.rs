//! `switchyard test [PATH…]`: runs story tests (`*.test.yaml`) in-process, offline.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context as _;
use switchyard_agents::{Services, ServicesConfig};
use switchyard_storytest::{run_file, test_files, FileReport};

/// Runs every story test under `paths` (default `./stories`); exit 1 on any failure.
pub async fn run(paths: &[PathBuf], packs_dir: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let default = [PathBuf::from("stories")];
    let paths = if paths.is_empty() {
        &default[..]
    } else {
        paths
    };
    let mut files = Vec::new();
    for p in paths {
        if !p.exists() {
            anyhow::bail!("{}: no such file or directory", p.display());
        }
        files.extend(test_files(p));
    }
    if files.is_empty() {
        anyhow::bail!(
            "no story tests (*.test.yaml) under {}",
            paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let (packs, _) = switchyard_story::load_packs(packs_dir);
    let services =
        Services::new(ServicesConfig::default()).context("cannot build the HTTP client")?;
    let started = Instant::now();
    let mut reports: Vec<FileReport> = Vec::with_capacity(files.len());
    for f in &files {
        reports.push(run_file(f, &packs, &services).await);
    }
    let cases: usize = reports.iter().map(|r| r.cases.len()).sum();
    let failed_cases: usize = reports
        .iter()
        .map(|r| r.cases.iter().filter(|c| !c.passed).count())
        .sum();
    let broken_files = reports
        .iter()
        .filter(|r| r.diagnostics.iter().any(|d| d.is_error()))
        .count();
    let ok = failed_cases == 0 && broken_files == 0;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "passed": ok,
                "cases": cases,
                "failed": failed_cases,
                "broken_files": broken_files,
                "files": reports,
            }))?
        );
    } else {
        for r in &reports {
            let story = r
                .story
                .as_deref()
                .map(|s| format!(" (story {s})"))
                .unwrap_or_default();
            println!("{}{story}", r.file.display());
            for d in &r.diagnostics {
                println!("  {}", d.to_string().replace('\n', "\n  "));
            }
            for c in &r.cases {
                let mark = if c.passed { "ok  " } else { "FAIL" };
                println!("  {mark} {} ({} µs)", c.name, c.micros);
                for f in &c.failures {
                    println!("       {f}");
                }
            }
        }
        println!(
            "\n{cases} case(s) in {} file(s): {} passed, {failed_cases} failed{} ({} ms)",
            reports.len(),
            cases - failed_cases,
            if broken_files > 0 {
                format!(", {broken_files} file(s) could not run")
            } else {
                String::new()
            },
            started.elapsed().as_millis()
        );
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
