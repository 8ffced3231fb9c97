#!/usr/bin/env node
import { main } from '../dist/cmd/collapse.js';
main(process.argv.slice(2));
