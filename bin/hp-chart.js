#!/usr/bin/env node
import { main } from '../dist/cmd/chart.js';
main(process.argv.slice(2));
