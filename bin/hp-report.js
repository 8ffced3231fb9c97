#!/usr/bin/env node
import { main } from '../dist/cmd/report.js';

main(process.argv.slice(2));
